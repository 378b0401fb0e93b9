import Foundation

/// The standard fields of the objects Switchboard works with out of the box, so rules can be checked
/// before an org is connected. A connected org's describe replaces these.
///
/// Each line: `Name type [flags] [values]`; flags: `r` read-only, `R` required on create, `D` defaulted on
/// create, `c` createable but not updateable.
public enum StandardObjects {
    public static let all: [ObjectSchema] = [
        build("Case", commonFields + """
            CaseNumber string r
            Subject string
            Description textarea
            Status picklist R New,Working,Escalated,Closed
            Priority picklist D High,Medium,Low
            Origin picklist R Phone,Email,Web
            Type picklist - Mechanical,Electrical,Electronic,Structural,Other
            Reason picklist - Installation,Equipment Complexity,Performance,Breakdown,Equipment Design,Feedback,Other
            IsEscalated boolean
            IsClosed boolean r
            ClosedDate datetime r
            IsClosedOnCreate boolean r
            AccountId reference
            ContactId reference
            AssetId reference
            ProductId reference
            EntitlementId reference
            BusinessHoursId reference
            ParentId reference
            MasterRecordId reference r
            RecordTypeId reference
            SourceId reference
            ServiceContractId reference
            SuppliedName string
            SuppliedEmail email
            SuppliedPhone phone
            SuppliedCompany string
            ContactPhone phone r
            ContactMobile phone r
            ContactEmail email r
            ContactFax phone r
            Comments textarea
            Language picklist
            SlaStartDate datetime
            SlaExitDate datetime r
            IsStopped boolean
            StopStartDate datetime r
            MilestoneStatus string r
            CurrencyIsoCode picklist
            """),
        build("CaseComment", """
            Id id r
            ParentId reference Rc
            IsPublished boolean D
            CommentBody textarea
            IsDeleted boolean r
            CreatedById reference r
            CreatedDate datetime r
            LastModifiedDate datetime r
            LastModifiedById reference r
            SystemModstamp datetime r
            """),
        build("FeedItem", """
            Id id r
            ParentId reference Rc
            Type picklist Dc TextPost,LinkPost,ContentPost
            Body textarea
            Title string
            LinkUrl url
            IsRichText boolean D
            Visibility picklist D AllUsers,InternalUsers
            Status picklist D Published,PendingReview
            RelatedRecordId reference
            CommentCount number r
            LikeCount number r
            IsDeleted boolean r
            CreatedById reference r
            CreatedDate datetime r
            LastModifiedDate datetime r
            SystemModstamp datetime r
            """),
        build("Incident", commonFields + """
            IncidentNumber string r
            Subject string R
            Description textarea
            Status picklist D New,Open,In Progress,Problem Created,Resolved,Completed
            Priority picklist D Critical,High,Moderate,Low
            Impact picklist D High,Medium,Low
            Urgency picklist D High,Medium,Low
            Category picklist
            SubCategory picklist
            Type picklist
            IsMajorIncident boolean
            DetectedDateTime datetime
            StartDateTime datetime
            EndDateTime datetime
            ResolutionDateTime datetime
            ResolutionSummary textarea
            PriorityOverrideReason textarea
            AssignedGroupId reference
            AssignedUserId reference
            """),
        build("Opportunity", commonFields + """
            Name string R
            Description textarea
            StageName picklist R Prospecting,Qualification,Needs Analysis,Value Proposition,Id. Decision Makers,Perception Analysis,Proposal/Price Quote,Negotiation/Review,Closed Won,Closed Lost
            Amount currency
            Probability percent
            ExpectedRevenue currency r
            TotalOpportunityQuantity double
            CloseDate date R
            Type picklist
            NextStep string
            LeadSource picklist
            IsClosed boolean r
            IsWon boolean r
            IsPrivate boolean
            ForecastCategory picklist r
            ForecastCategoryName picklist
            AccountId reference
            ContactId reference
            CampaignId reference
            Pricebook2Id reference
            RecordTypeId reference
            HasOpportunityLineItem boolean r
            LastActivityDate date r
            FiscalQuarter int r
            FiscalYear int r
            Fiscal string r
            CurrencyIsoCode picklist
            """),
        build("Account", commonFields + """
            Name string R
            Type picklist
            Industry picklist
            AccountNumber string
            Phone phone
            Website url
            Description textarea
            ParentId reference
            AnnualRevenue currency
            NumberOfEmployees int
            Rating picklist
            BillingCity string
            BillingCountry string
            RecordTypeId reference
            """),
        build("Contact", commonFields + """
            FirstName string
            LastName string R
            Name string r
            Email email
            Phone phone
            MobilePhone phone
            Title string
            Department string
            AccountId reference
            ReportsToId reference
            Description textarea
            RecordTypeId reference
            """),
    ]

    private static let commonFields = """
        Id id r
        OwnerId reference D
        IsDeleted boolean r
        CreatedDate datetime r
        CreatedById reference r
        LastModifiedDate datetime r
        LastModifiedById reference r
        SystemModstamp datetime r
        LastViewedDate datetime r
        LastReferencedDate datetime r

        """

    private static func build(_ name: String, _ spec: String) -> ObjectSchema {
        var fields: [FieldDescription] = []
        for rawLine in spec.split(separator: "\n") {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty else { continue }
            let parts = line.split(separator: " ", maxSplits: 3).map(String.init)
            let flags = parts.count > 2 ? parts[2] : ""
            let values = parts.count > 3 ? parts[3].split(separator: ",").map(String.init) : []
            let readOnly = flags.contains("r")
            fields.append(
                FieldDescription(
                    name: parts[0], salesforceType: parts[1], createable: !readOnly,
                    updateable: !readOnly && !flags.contains("c"),
                    nillable: !flags.contains("R") && parts[1] != "boolean" && !readOnly,
                    defaultedOnCreate: flags.contains("D") || parts[1] == "boolean", picklistValues: values))
        }
        return ObjectSchema(name: name, fields: fields, isFromDescribe: false)
    }
}
