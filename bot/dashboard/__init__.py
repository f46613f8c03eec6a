"""The responders' dashboard (see bot/dashboard/app.py)."""

from bot.dashboard.app import PREFIX, Dashboard, dashboard_app, mount_dashboard

__all__ = ["PREFIX", "Dashboard", "dashboard_app", "mount_dashboard"]
