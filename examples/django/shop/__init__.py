"""A minimal Django project that forwards user events with eventfwd."""
