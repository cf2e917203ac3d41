from races.admin import register_admin
from scenarios.profiles.models import Profile, ProfileEdit

register_admin(Profile, "handle", "display_name", "city", "version", search=("handle",))
register_admin(ProfileEdit, "profile", "field", "value", filters=("field",))
