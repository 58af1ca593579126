import sqlite3
import uuid

from flowbus.producer import EventProducer, outbox, start_forwarding

from review import complete_review

start_forwarding(EventProducer(), default_sink="outbox")  # or FLOWBUS_PRODUCER_SINK=outbox

conn = sqlite3.connect("app.db")
conn.execute("CREATE TABLE IF NOT EXISTS reviews (case_id TEXT)")
with outbox.bind(conn):  # sqlite3 / psycopg 3 connection, or a SQLAlchemy Session or Connection
    case_id = uuid.uuid4()
    conn.execute("INSERT INTO reviews VALUES (?)", (str(case_id),))
    complete_review(case_id)  # a row in flowbus_outbox, in this transaction
conn.commit()  # rollback: the events go with it
