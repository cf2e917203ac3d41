"""The withdrawal's SQL text, with no import: accounts/sql.py runs it through Django's connection,
and the bare-WSGI floor (bench/floor/) through the driver alone, without loading Django."""

# MariaDB (10.3.2+) allows the subquery on the table being updated; MySQL would refuse it (1093).
# The user's first account, as accounts.selectors.account_for_user picks it, debited only if
# the balance stays at or above its minimum. Under READ COMMITTED, PostgreSQL and InnoDB check
# the condition again on the newest version of the row once its lock is theirs: no lost update,
# no overdraft, whatever ran concurrently.
DEBIT = """
    UPDATE accounts_account SET current = current - %s
    WHERE id = (SELECT MIN(id) FROM accounts_account WHERE user_id = %s) AND current >= minimum + %s
"""
# SQLite 3.35+ and PostgreSQL answer the balance with the UPDATE itself.
DEBIT_RETURNING = DEBIT + "RETURNING id, current"
LEDGER_COLUMNS = "(holder_id, amount, balance_before, balance, strategy, request_started_at, created_at)"
INSERT_LEDGER_ROW = f"INSERT INTO accounts_transaction {LEDGER_COLUMNS} VALUES (%s, %s, %s, %s, %s, %s, %s)"
# PostgreSQL writes the debit and its ledger row in one statement, atomic by itself: no BEGIN,
# no COMMIT, one round trip where a transaction would take four.
DEBIT_AND_RECORD = f"""
    WITH debited AS ({DEBIT_RETURNING})
    INSERT INTO accounts_transaction {LEDGER_COLUMNS}
    SELECT id, %s, current + %s, current, %s, %s, %s FROM debited
    RETURNING holder_id, balance
"""
# MariaDB 10.11 has no UPDATE ... RETURNING, but has INSERT ... RETURNING (10.5+), and takes
# several statements in one query (mysqlclient allows it): DEBIT and this go as one batch, one
# round trip. The ledger row copies the balance from the row our UPDATE holds locked, and
# answers it; ROW_COUNT() is DEBIT's count, so there is no row when DEBIT changed nothing.
RECORD_DEBIT = f"""
    INSERT INTO accounts_transaction {LEDGER_COLUMNS}
    SELECT id, %s, current + %s, current, %s, %s, %s FROM accounts_account
    WHERE id = (SELECT MIN(id) FROM accounts_account WHERE user_id = %s) AND ROW_COUNT() > 0
    RETURNING holder_id, balance
"""
# The same for any other write on MariaDB: its ledger row, in the same batch, if it changed a row
# (rows found, not changed: Django connects with CLIENT_FOUND_ROWS).
INSERT_LEDGER_ROW_IF_WRITTEN = (
    f"INSERT INTO accounts_transaction {LEDGER_COLUMNS} SELECT %s, %s, %s, %s, %s, %s, %s FROM DUAL "
    "WHERE ROW_COUNT() > 0"
)
# The locking strategies' write, once their read has decided; optimistic's only if the version
# it read is still the row's.
SET_BALANCE = "UPDATE accounts_account SET current = %s WHERE id = %s"
SET_BALANCE_IF_VERSION = (
    "UPDATE accounts_account SET current = %s, version = version + 1 WHERE id = %s AND version = %s"
)
