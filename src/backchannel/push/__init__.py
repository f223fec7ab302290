"""How a push leaves the server: Web Push, FCM HTTP v1 and APNs, behind one interface.

A lower layer: it imports `persistence` and `errors` only, never `domain`, `server`,
`handlers` or `http`. The server opens the providers (`open_providers`) and the push queue calls
`PushProviders.send` once per device.
"""
