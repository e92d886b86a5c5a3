from __future__ import annotations

from django.urls import path

from shop import views

urlpatterns = [
    path("", views.index),
    path("events/<str:platform_id>", views.track),
]
