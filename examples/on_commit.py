import sqlite3
import uuid

from flowbus.producer import (
    DBAPITransactions,
    EventProducer,
    OnCommitSink,
    start_forwarding,
)

from review import complete_review

transactions = DBAPITransactions()  # or DjangoTransactions(), SQLAlchemyTransactions(session)
producer = EventProducer()
on_commit = OnCommitSink(producer, transactions)
start_forwarding(producer, sinks={"on_commit": on_commit}, default_sink="on_commit")

conn = sqlite3.connect("app.db")
conn.execute("CREATE TABLE IF NOT EXISTS reviews (case_id TEXT)")
with transactions.transaction(conn):  # commits at the end, then produces what was sent
    case_id = uuid.uuid4()
    conn.execute("INSERT INTO reviews VALUES (?)", (str(case_id),))
    complete_review(case_id)  # held until the commit; an exception would drop it
