from django.apps import AppConfig


class RaceWindowConfig(AppConfig):
    name = "racewindow"
    verbose_name = "Race window"

    def ready(self) -> None:
        from racewindow.barrier import check_settings

        # A server refused race mode (DEBUG off) must not start at all, rather than fail at its
        # first request.
        check_settings()
