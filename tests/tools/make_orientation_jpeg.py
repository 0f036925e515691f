"""tests/data/orientation6.jpg: a 48x32 JPEG whose pixels are stored sideways with EXIF
Orientation 6 ("rotate 90 CW to display"), so a correct reader shows it 32x48, red on top.

    /tmp/skvenv/bin/python tests/tools/make_orientation_jpeg.py   (Pillow 13.0.0)
"""
from PIL import Image

# Displayed upright: 32 wide, 48 high, top half red, bottom half blue.
upright = Image.new("RGB", (32, 48), (0, 0, 255))
upright.paste((255, 0, 0), (0, 0, 32, 24))
# Stored so that rotating 90 degrees clockwise gives the upright image.
stored = upright.rotate(90, expand=True)
exif = Image.Exif()
exif[0x0112] = 6
stored.save("tests/data/orientation6.jpg", quality=95, exif=exif.tobytes())
print(stored.size)
