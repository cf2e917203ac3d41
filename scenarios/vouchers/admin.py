from races.admin import register_admin
from scenarios.vouchers.models import Voucher, VoucherUsage

register_admin(Voucher, "code", "limit", "remaining", search=("code",))
register_admin(VoucherUsage, "voucher", "user", "slot")
