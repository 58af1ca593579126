flowbus outbox migrate --database sqlite:///app.db     # or FLOWBUS_OUTBOX_DATABASE_URL
