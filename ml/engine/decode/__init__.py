"""Decoding: every file (PNG, JPEG, DICOM) becomes one uint8 grey array or one `ImageDecodeError`
sentence (`images`), with what a DICOM header says (`dicom`); `pixels` holds what both share.

Imports nothing else of the engine, and never TensorFlow: the web process validates uploads with it."""
