/// The published JSON Schema of the rules file (version 1). The same text is committed as
/// `schemas/rules.schema.json`; a test keeps the two equal. `switchboard rules schema` prints it.
public enum RulesSchema {
    public static let json = #"""
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "https://switchboard.invalid/schemas/rules-v1.json",
  "title": "Switchboard rules file, version 1",
  "description": "Business-hours calendars and rulesets for Switchboard, the Salesforce Service Cloud and PagerDuty integration. Switchboard's own validation is stricter (fields checked against the object's describe, regexes compiled, calendars resolved).",
  "type": "object",
  "properties": {
    "$schema": {
      "type": "string"
    },
    "version": {
      "const": 1
    },
    "calendars": {
      "type": "array",
      "items": {
        "$ref": "#/$defs/calendar"
      }
    },
    "rulesets": {
      "type": "array",
      "items": {
        "$ref": "#/$defs/ruleset"
      }
    }
  },
  "required": [
    "rulesets"
  ],
  "additionalProperties": false,
  "$defs": {
    "fieldName": {
      "type": "string",
      "pattern": "^[A-Za-z][A-Za-z0-9_]*$"
    },
    "hours": {
      "type": "string",
      "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]-(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
    },
    "calendar": {
      "type": "object",
      "properties": {
        "name": {
          "type": "string",
          "minLength": 1
        },
        "description": {
          "type": "string"
        },
        "timeZone": {
          "type": "string",
          "description": "An IANA time zone name, e.g. America/New_York."
        },
        "weekly": {
          "type": "object",
          "properties": {
            "monday": {
              "oneOf": [
                {
                  "type": "array",
                  "items": {
                    "$ref": "#/$defs/hours"
                  }
                },
                {
                  "$ref": "#/$defs/hours"
                },
                {
                  "type": "null"
                }
              ]
            },
            "tuesday": {
              "oneOf": [
                {
                  "type": "array",
                  "items": {
                    "$ref": "#/$defs/hours"
                  }
                },
                {
                  "$ref": "#/$defs/hours"
                },
                {
                  "type": "null"
                }
              ]
            },
            "wednesday": {
              "oneOf": [
                {
                  "type": "array",
                  "items": {
                    "$ref": "#/$defs/hours"
                  }
                },
                {
                  "$ref": "#/$defs/hours"
                },
                {
                  "type": "null"
                }
              ]
            },
            "thursday": {
              "oneOf": [
                {
                  "type": "array",
                  "items": {
                    "$ref": "#/$defs/hours"
                  }
                },
                {
                  "$ref": "#/$defs/hours"
                },
                {
                  "type": "null"
                }
              ]
            },
            "friday": {
              "oneOf": [
                {
                  "type": "array",
                  "items": {
                    "$ref": "#/$defs/hours"
                  }
                },
                {
                  "$ref": "#/$defs/hours"
                },
                {
                  "type": "null"
                }
              ]
            },
            "saturday": {
              "oneOf": [
                {
                  "type": "array",
                  "items": {
                    "$ref": "#/$defs/hours"
                  }
                },
                {
                  "$ref": "#/$defs/hours"
                },
                {
                  "type": "null"
                }
              ]
            },
            "sunday": {
              "oneOf": [
                {
                  "type": "array",
                  "items": {
                    "$ref": "#/$defs/hours"
                  }
                },
                {
                  "$ref": "#/$defs/hours"
                },
                {
                  "type": "null"
                }
              ]
            }
          },
          "additionalProperties": false
        },
        "holidays": {
          "type": "array",
          "items": {
            "type": "string",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
          }
        }
      },
      "required": [
        "name",
        "timeZone"
      ],
      "additionalProperties": false
    },
    "ruleset": {
      "type": "object",
      "properties": {
        "name": {
          "type": "string",
          "minLength": 1
        },
        "enabled": {
          "type": "boolean",
          "default": true
        },
        "description": {
          "type": "string"
        },
        "rules": {
          "type": "array",
          "items": {
            "$ref": "#/$defs/rule"
          }
        }
      },
      "required": [
        "name"
      ],
      "additionalProperties": false
    },
    "rule": {
      "type": "object",
      "properties": {
        "name": {
          "type": "string",
          "minLength": 1
        },
        "enabled": {
          "type": "boolean",
          "default": true
        },
        "description": {
          "type": "string"
        },
        "object": {
          "$ref": "#/$defs/fieldName",
          "description": "The Salesforce object API name: Case, Incident, Opportunity, My_Object__c."
        },
        "runOn": {
          "enum": [
            "salesforce",
            "pagerduty"
          ]
        },
        "match": {
          "enum": [
            "all",
            "any"
          ],
          "default": "all"
        },
        "conditions": {
          "type": "array",
          "items": {
            "$ref": "#/$defs/condition"
          }
        },
        "applyTo": {
          "enum": [
            "new",
            "linked"
          ]
        },
        "actions": {
          "type": "array",
          "minItems": 1,
          "items": {
            "$ref": "#/$defs/action"
          }
        }
      },
      "required": [
        "name",
        "object",
        "runOn",
        "applyTo",
        "actions"
      ],
      "additionalProperties": false
    },
    "condition": {
      "type": "object",
      "properties": {
        "field": {
          "type": "string",
          "description": "A field of the rule's object, or one of: pagerduty.eventType, pagerduty.title, pagerduty.status, pagerduty.service, pagerduty.serviceName, pagerduty.escalationPolicy, pagerduty.escalationPolicyName, pagerduty.priority, pagerduty.urgency, pagerduty.id, pagerduty.number, pagerduty.htmlUrl, pagerduty.eventName, pagerduty.createdAt, pagerduty.occurredAt, pagerduty.assignees, pagerduty.teams, pagerduty.incidentKey, pagerduty.note, pagerduty.agent, pagerduty.conferenceUrl.",
          "pattern": "^([A-Za-z][A-Za-z0-9_]*|pagerduty\\.[A-Za-z]+)$"
        },
        "operator": {
          "enum": [
            "equals",
            "notEquals",
            "contains",
            "notContains",
            "startsWith",
            "endsWith",
            "matches",
            "in",
            "notIn",
            "greaterThan",
            "greaterOrEqual",
            "lessThan",
            "lessOrEqual",
            "isBlank",
            "isNotBlank",
            "changes",
            "withinBusinessHours",
            "outsideBusinessHours"
          ]
        },
        "value": {
          "oneOf": [
            {
              "type": [
                "string",
                "number",
                "boolean"
              ]
            },
            {
              "type": "array",
              "items": {
                "type": [
                  "string",
                  "number",
                  "boolean"
                ]
              },
              "minItems": 1
            }
          ]
        },
        "from": {
          "type": [
            "string",
            "number",
            "boolean"
          ]
        },
        "to": {
          "type": [
            "string",
            "number",
            "boolean"
          ]
        },
        "caseSensitive": {
          "type": "boolean",
          "default": false
        }
      },
      "required": [
        "operator"
      ],
      "additionalProperties": false,
      "allOf": [
        {
          "if": {
            "properties": {
              "operator": {
                "enum": [
                  "isBlank",
                  "isNotBlank",
                  "changes"
                ]
              }
            }
          },
          "then": {
            "not": {
              "required": [
                "value"
              ]
            }
          }
        },
        {
          "if": {
            "properties": {
              "operator": {
                "not": {
                  "enum": [
                    "isBlank",
                    "isNotBlank",
                    "changes"
                  ]
                }
              }
            }
          },
          "then": {
            "required": [
              "value"
            ]
          }
        },
        {
          "if": {
            "properties": {
              "operator": {
                "not": {
                  "const": "changes"
                }
              }
            }
          },
          "then": {
            "not": {
              "anyOf": [
                {
                  "required": [
                    "from"
                  ]
                },
                {
                  "required": [
                    "to"
                  ]
                }
              ]
            }
          }
        },
        {
          "if": {
            "properties": {
              "operator": {
                "not": {
                  "enum": [
                    "withinBusinessHours",
                    "outsideBusinessHours"
                  ]
                }
              }
            }
          },
          "then": {
            "required": [
              "field"
            ]
          }
        }
      ]
    },
    "action": {
      "oneOf": [
        {
          "type": "object",
          "properties": {
            "action": {
              "const": "createIncident"
            },
            "service": {
              "type": "string",
              "minLength": 1
            },
            "urgency": {
              "enum": [
                "high",
                "low"
              ]
            },
            "priority": {
              "type": "string",
              "minLength": 1
            },
            "escalationPolicy": {
              "type": "string",
              "minLength": 1
            },
            "assignee": {
              "type": "string",
              "minLength": 1
            },
            "title": {
              "oneOf": [
                {
                  "type": "string",
                  "description": "A template, e.g. \"Case {{CaseNumber}}: {{Subject}}\"."
                },
                {
                  "type": "object",
                  "properties": {
                    "prefix": {
                      "type": "string"
                    },
                    "fields": {
                      "type": "array",
                      "items": {
                        "type": "string"
                      },
                      "maxItems": 3
                    },
                    "separator": {
                      "type": "string"
                    }
                  },
                  "additionalProperties": false
                }
              ]
            },
            "description": {
              "type": "string",
              "description": "Text; {{Field}} placeholders are replaced by the event's field values."
            },
            "conferenceUrl": {
              "type": "string",
              "description": "Text; {{Field}} placeholders are replaced by the event's field values."
            },
            "conferenceNumber": {
              "type": "string",
              "description": "Text; {{Field}} placeholders are replaced by the event's field values."
            }
          },
          "required": [
            "action",
            "service"
          ],
          "additionalProperties": false,
          "not": {
            "required": [
              "escalationPolicy",
              "assignee"
            ]
          }
        },
        {
          "type": "object",
          "properties": {
            "action": {
              "const": "acknowledge"
            }
          },
          "required": [
            "action"
          ],
          "additionalProperties": false
        },
        {
          "type": "object",
          "properties": {
            "action": {
              "const": "resolve"
            },
            "resolution": {
              "type": "string",
              "description": "Text; {{Field}} placeholders are replaced by the event's field values."
            }
          },
          "required": [
            "action"
          ],
          "additionalProperties": false
        },
        {
          "type": "object",
          "properties": {
            "action": {
              "const": "setPriority"
            },
            "priority": {
              "type": "string",
              "minLength": 1
            }
          },
          "required": [
            "action",
            "priority"
          ],
          "additionalProperties": false
        },
        {
          "type": "object",
          "properties": {
            "action": {
              "const": "setUrgency"
            },
            "urgency": {
              "enum": [
                "high",
                "low"
              ]
            }
          },
          "required": [
            "action",
            "urgency"
          ],
          "additionalProperties": false
        },
        {
          "type": "object",
          "properties": {
            "action": {
              "const": "runIncidentWorkflow"
            },
            "workflow": {
              "type": "string",
              "minLength": 1
            }
          },
          "required": [
            "action",
            "workflow"
          ],
          "additionalProperties": false
        },
        {
          "type": "object",
          "properties": {
            "action": {
              "const": "runAutomationAction"
            },
            "automationAction": {
              "type": "string",
              "minLength": 1
            }
          },
          "required": [
            "action",
            "automationAction"
          ],
          "additionalProperties": false
        },
        {
          "type": "object",
          "properties": {
            "action": {
              "const": "reassign"
            },
            "users": {
              "oneOf": [
                {
                  "type": "array",
                  "items": {
                    "type": "string",
                    "minLength": 1
                  }
                },
                {
                  "type": "string",
                  "minLength": 1
                }
              ]
            },
            "escalationPolicy": {
              "type": "string",
              "minLength": 1
            }
          },
          "required": [
            "action"
          ],
          "additionalProperties": false,
          "oneOf": [
            {
              "required": [
                "users"
              ]
            },
            {
              "required": [
                "escalationPolicy"
              ]
            }
          ]
        },
        {
          "type": "object",
          "properties": {
            "action": {
              "const": "addResponders"
            },
            "users": {
              "oneOf": [
                {
                  "type": "array",
                  "items": {
                    "type": "string",
                    "minLength": 1
                  }
                },
                {
                  "type": "string",
                  "minLength": 1
                }
              ]
            },
            "escalationPolicies": {
              "oneOf": [
                {
                  "type": "array",
                  "items": {
                    "type": "string",
                    "minLength": 1
                  }
                },
                {
                  "type": "string",
                  "minLength": 1
                }
              ]
            },
            "message": {
              "type": "string",
              "description": "Text; {{Field}} placeholders are replaced by the event's field values."
            }
          },
          "required": [
            "action"
          ],
          "additionalProperties": false,
          "anyOf": [
            {
              "required": [
                "users"
              ]
            },
            {
              "required": [
                "escalationPolicies"
              ]
            }
          ]
        },
        {
          "type": "object",
          "properties": {
            "action": {
              "const": "setField"
            },
            "field": {
              "$ref": "#/$defs/fieldName"
            },
            "value": {
              "type": [
                "string",
                "number",
                "boolean",
                "null"
              ],
              "description": "A value; text may use {{Field}} placeholders."
            }
          },
          "required": [
            "action",
            "field",
            "value"
          ],
          "additionalProperties": false
        },
        {
          "type": "object",
          "properties": {
            "action": {
              "const": "createRecord"
            },
            "object": {
              "$ref": "#/$defs/fieldName"
            },
            "org": {
              "type": "string",
              "description": "The Id of the Salesforce org the record is created in; needed when several orgs are connected."
            },
            "fields": {
              "type": "object",
              "additionalProperties": {
                "type": [
                  "string",
                  "number",
                  "boolean",
                  "null"
                ],
                "description": "A value; text may use {{Field}} placeholders."
              }
            }
          },
          "required": [
            "action"
          ],
          "additionalProperties": false
        },
        {
          "type": "object",
          "properties": {
            "action": {
              "const": "setIncidentConference"
            },
            "field": {
              "$ref": "#/$defs/fieldName"
            },
            "numberField": {
              "$ref": "#/$defs/fieldName"
            }
          },
          "required": [
            "action",
            "field"
          ],
          "additionalProperties": false
        },
        {
          "type": "object",
          "properties": {
            "action": {
              "const": "setIncidentDescription"
            },
            "field": {
              "$ref": "#/$defs/fieldName"
            }
          },
          "required": [
            "action",
            "field"
          ],
          "additionalProperties": false
        }
      ]
    },
    "pagerDutyField": {
      "enum": [
        "pagerduty.eventType",
        "pagerduty.title",
        "pagerduty.status",
        "pagerduty.service",
        "pagerduty.serviceName",
        "pagerduty.escalationPolicy",
        "pagerduty.escalationPolicyName",
        "pagerduty.priority",
        "pagerduty.urgency",
        "pagerduty.id",
        "pagerduty.number",
        "pagerduty.htmlUrl",
        "pagerduty.eventName",
        "pagerduty.createdAt",
        "pagerduty.occurredAt",
        "pagerduty.assignees",
        "pagerduty.teams",
        "pagerduty.incidentKey",
        "pagerduty.note",
        "pagerduty.agent",
        "pagerduty.conferenceUrl"
      ]
    },
    "operator": {
      "enum": [
        "equals",
        "notEquals",
        "contains",
        "notContains",
        "startsWith",
        "endsWith",
        "matches",
        "in",
        "notIn",
        "greaterThan",
        "greaterOrEqual",
        "lessThan",
        "lessOrEqual",
        "isBlank",
        "isNotBlank",
        "changes",
        "withinBusinessHours",
        "outsideBusinessHours"
      ]
    }
  }
}
"""#
}
