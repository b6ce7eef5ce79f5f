"""teachable: find the moments where teaching a web-shopping agent helps most, and learn from them."""
