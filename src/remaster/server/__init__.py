"""``remaster serve`` (:mod:`~remaster.server.app`) and its standard-library client (:mod:`~remaster.server.client`,
which the GIMP and Krita add-ons copy).

Nothing is imported here, so that the client costs neither Starlette nor torch.
"""
