"""The inbox: every update a channel delivers, kept from its arrival until it is processed.

Webhook mode writes each update here before Telegram gets its 200, and workers (one or
several processes on PostgreSQL) process from here, one chat at a time and in order.
"""
