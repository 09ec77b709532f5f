//! The embedded backend: the store traits over the home's SQLite database
//! ([`crate::evidence::Store`] opens it and owns its connections) and, for
//! registered components, the home's `tools/` directory.

mod approvals;
mod bindings;
mod tokens;
mod tools;

#[cfg(test)]
pub(crate) use tools::SETTLED;

/// Runs `sql` with text `params` straight against the database, as someone
/// who can edit `airlock.db` would: tests of what such edits can and cannot
/// achieve.
#[cfg(test)]
pub(crate) fn edit_database(
    store: &crate::evidence::Store,
    sql: &str,
    params: &[&str],
) -> rusqlite::Result<usize> {
    rusqlite::Connection::open(store.db_path())?.execute(sql, rusqlite::params_from_iter(params))
}
