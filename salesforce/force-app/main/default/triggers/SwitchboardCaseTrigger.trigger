// Publishes every Case insert and update to Switchboard (one signed callout per batch, async).
trigger SwitchboardCaseTrigger on Case (after insert, after update) {
    SwitchboardLauncher.launchByTrigger('Case', JSON.serialize(Trigger.oldMap), JSON.serialize(Trigger.newMap), Trigger.isInsert);
}
