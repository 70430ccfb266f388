//! trove-conductor: takes guest heartbeats, backup and root reports and failure notices off the trove-conductor topic and writes them to the control database.
