"""The peers these tests compare with (basicsr, realesrgan) import thanks to the root conftest.py."""
