"""Webhooks to internal subscribers: signing, allowed targets, durable delivery."""
