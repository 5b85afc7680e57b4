"""Faces: 68-point landmarks (``landmarks``), stable square crops (``align``) and head pose (``pose``).

The heavy optional dependencies (dlib, face_alignment, OpenCV) are imported only when a backend is used.
"""
