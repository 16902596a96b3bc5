"""Tickets that close (限时办结): the lifecycle, its storage, the `hotline tickets` commands and the HTTP API.

- ivr.ticketing.lifecycle  the states and actions, and how each moves the deadline (pure; start here)
- ivr.ticketing.store      schema version 4 in the call log, and TicketBook: read and move tickets
- ivr.ticketing.cli        `hotline tickets …` and `hotline api-keys …`
- ivr.ticketing.api        the HTTP API for units and partners (on the controller's HTTP server), status pushes
- ivr.ticketing.keys       the API's credentials, one 0600 file per key

Opening a ticket stays with the call (ivr.tickets, ivr.call.books): the controller's writer stores it with
its first event.
"""
