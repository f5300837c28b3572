"""The shared back-office kit: what every admin page of the project (wallet, jobs, audit)
builds on, kept in the audit app because it imports no money app.

* `links`: admin URLs, links and user labels;
* `pages`: the read-only admin, the "Audit trail" button, points columns, the stylesheet,
  the site's name;
* `csv_export`: the streamed, audited CSV export of a changelist;
* `forbidden`: the audited 403 page (settings' `handler403`);
* `fields`: strict form fields for money input.
"""
