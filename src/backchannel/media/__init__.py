"""Uploaded media: storage backends, type sniffing, processing and signed links."""
