"""Data rights and retention: what we hold about a person, erasure, withdrawal, retention."""
