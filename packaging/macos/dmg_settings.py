# dmgbuild settings for the macOS download: NOIZYLAB.app and a link to /Applications in one compressed disk image.
#
#   dmgbuild -s packaging/macos/dmg_settings.py -D app=dist/NOIZYLAB.app "NOIZYLAB" dist/NOIZYLAB-<version>.dmg
#
# dmgbuild runs this file with `defines` (the -D values) already set; every name it assigns is a setting. The
# layout is the one people know: the app on the left, drag it onto Applications on the right. ULFO is lzfse
# compression (macOS 10.11 and later read it).
import os.path

application = defines.get("app", "dist/NOIZYLAB.app")  # noqa: F821 - dmgbuild defines `defines`
appname = os.path.basename(application)

format = defines.get("format", "ULFO")  # noqa: F821
filesystem = "HFS+"
size = None  # dmgbuild measures the files and adds room
files = [application]
symlinks = {"Applications": "/Applications"}
badge_icon = defines.get("badge_icon")  # noqa: F821 - the app's .icns, when packaging/build.py made one

window_rect = ((200, 200), (560, 320))
default_view = "icon-view"
show_status_bar = False
show_tab_view = False
show_toolbar = False
show_pathbar = False
show_sidebar = False
icon_size = 112
text_size = 13
icon_locations = {appname: (150, 150), "Applications": (410, 150)}
