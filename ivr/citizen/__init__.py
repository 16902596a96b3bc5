"""What the citizen hears and can ask about their own matter: the ticket number, its progress, 回访 and callbacks."""
