"""Test helpers shared by several test modules (real local servers, fixture builders)."""
