from secpod.cli import entry

entry()
