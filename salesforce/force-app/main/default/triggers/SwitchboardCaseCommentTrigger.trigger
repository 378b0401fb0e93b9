// Publishes every CaseComment insert and update to Switchboard (one signed callout per batch, async).
trigger SwitchboardCaseCommentTrigger on CaseComment (after insert, after update) {
    SwitchboardLauncher.launchByTrigger('CaseComment', JSON.serialize(Trigger.oldMap), JSON.serialize(Trigger.newMap), Trigger.isInsert);
}
