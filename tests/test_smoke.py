from tests.conftest import create_attendee, create_event, register


async def test_register_confirms(client):
    event = await create_event(client, maxAttendees=1)
    attendee = await create_attendee(client)
    response = await register(client, event["id"], attendee["id"])
    assert response.status_code == 201
    assert response.json()["status"] == "confirmed"
