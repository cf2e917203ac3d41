from races.admin import register_admin
from scenarios.transfers.models import Transfer, Wallet

register_admin(Wallet, "name", "balance", "opening_balance", search=("name",))
register_admin(Transfer, "source", "destination", "amount")
