"""Settings, the app factory, lifecycle and the command line."""
