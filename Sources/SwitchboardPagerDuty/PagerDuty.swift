// The PagerDuty connector.
