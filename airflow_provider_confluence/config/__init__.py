"""Settings, checked before any request is sent: a connection's fields, the deployment's ``[confluence]``
section, where credentials may go (endpoints), and which local files a task may touch."""
