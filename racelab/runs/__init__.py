"""Runs against any endpoint of any project: the plan, the race window around it, the verdict."""
