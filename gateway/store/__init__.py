"""The store: what the gateway must remember across restarts, behind one narrow interface
(`protocol.Store`), with its values (`records`) and the errors callers handle (`errors`).

SQLite is the embedded default; PostgreSQL serves several gateway processes or replicas on one
database. Both run the same logic (`logic`, `steps`) over a dialect of their own (`sql.Db`), and
pass the same contract tests (`tests/test_store.py`).
"""
