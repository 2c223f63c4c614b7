"""The browser's files (CSS, JavaScript, vendored MIT libraries), served by Dash under ``/assets/``.

A package only so that ``attention_explorer.assets`` locates this folder the same way in a checkout
(the editable install maps it here) and in a wheel (its files are package data); nothing imports code
from it. ``attention_explorer.app.assets_folder`` reads its location.
"""
