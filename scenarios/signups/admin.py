from races.admin import register_admin
from scenarios.signups.models import Signup

register_admin(Signup, "email", "user", search=("email",))
