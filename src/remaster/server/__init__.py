"""``remaster serve`` and its standard-library client.

- :mod:`~remaster.server.app`: the Starlette app assembled (:func:`build_app`), :class:`ServerConfig` and
  :func:`serve`, which binds, writes the server file and runs uvicorn until interrupted;
- :mod:`~remaster.server.guard`: the ASGI middleware checking Host, Origin and the bearer token, and
  :func:`is_loopback`;
- :mod:`~remaster.server.jobs`: jobs, the bounded job queue and its worker thread;
- :mod:`~remaster.server.http`: :class:`HTTPError`, JSON responses, the options header and the bounded body;
- :mod:`~remaster.server.presets`: the editor presets whose stages are all installed;
- :mod:`~remaster.server.client`: the standard-library client, which the GIMP and Krita add-ons copy.

Nothing is imported here, so that the client costs neither Starlette nor torch.
"""
