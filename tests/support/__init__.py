"""Test support: real processes (redis-server, Celery worker and beat) started by the suite."""
