"""The app's pages, one module each (``dash.register_page``), found by Dash through ``pages_folder``."""
