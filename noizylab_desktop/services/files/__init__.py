"""Files sent to a peer: ``noizylab send PEER FILE`` here, ``Files.Receive`` there (see ``feature.py``)."""
