"""Date formats of the admin (Django reads them through FORMAT_MODULE_PATH).

Staff compare ledger rows to the second and across time zones, so every date and time
the back-office shows carries seconds and its zone, in one unambiguous order.
"""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
