// Publishes every Incident insert and update to Switchboard (one signed callout per batch, async).
trigger SwitchboardIncidentTrigger on Incident (after insert, after update) {
    SwitchboardLauncher.launchByTrigger('Incident', JSON.serialize(Trigger.oldMap), JSON.serialize(Trigger.newMap), Trigger.isInsert);
}
