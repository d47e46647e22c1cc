"""The built-in methods, one module (or sub-package) each. The registry imports every one of them on its first
lookup; a file dropped here is a method, with no list to edit."""
