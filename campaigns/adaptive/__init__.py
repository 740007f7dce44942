"""adaptive."""
