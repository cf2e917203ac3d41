from races.admin import register_admin
from scenarios.capacity.models import Activity, Participant

register_admin(Activity, "name", "max_participants", "places_left", search=("name",))
register_admin(Participant, "activity", "user")
