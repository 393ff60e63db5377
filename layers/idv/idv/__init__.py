"""idv: the shared layer of the verification gateway (provider clients, results, validation, images, privacy).

Importing the package is cheap on purpose: submodules are imported where used, and Pillow /
pycryptodome load only when an image or AES field is actually processed.
"""
