"""Remote desktop: capture and encode on the host, a gRPC stream of H.264 frames, decode and input on the viewer.

host side:   capture.py (mss, a worker thread) → encoder.py (PyAV, probed) → host.py (pipeline) → service.py (gRPC)
             inject.py (XTEST input), consent and permissions in service.py
viewer side: connect.py (a pinned channel to the peer) → client.py (session, clock offset, feedback)
             → decoder.py (PyAV) / recorder.py (MP4 without re-encoding)
"""
