from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = "Bank accounts"

    def ready(self) -> None:
        from accounts.race_window import check_settings

        # A server refused race mode (DEBUG off) must not start at all, rather than fail at
        # its first withdrawal.
        check_settings()
