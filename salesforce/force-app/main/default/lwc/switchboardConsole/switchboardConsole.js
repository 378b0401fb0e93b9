import { LightningElement, api } from 'lwc';
import consoleUrl from '@salesforce/apex/SwitchboardConsoleController.consoleUrl';

const DEFAULT_HEIGHT = 600;

/**
 * Frames Switchboard's console for the current record. The URL carries a signed context token
 * that lives 5 minutes, so it is fetched fresh on every load and on "Reload".
 */
export default class SwitchboardConsole extends LightningElement {
    /** Frame height in pixels, set in the Lightning App Builder. */
    @api height = DEFAULT_HEIGHT;

    url;
    error;
    loading = true;
    _recordId;

    @api
    get recordId() {
        return this._recordId;
    }

    set recordId(value) {
        if (value && value !== this._recordId) {
            this._recordId = value;
            this.load();
        }
    }

    connectedCallback() {
        if (!this._recordId) {
            this.loading = false;
            this.error = 'Switchboard Console works on record pages only.';
        }
    }

    get frameStyle() {
        const height = Number(this.height) > 0 ? Number(this.height) : DEFAULT_HEIGHT;
        return `display: block; width: 100%; height: ${height}px; border: 0;`;
    }

    handleReload() {
        this.load();
    }

    async load() {
        if (!this._recordId) {
            return;
        }
        this.loading = true;
        this.error = undefined;
        try {
            this.url = await consoleUrl({ recordId: this._recordId });
        } catch (e) {
            this.url = undefined;
            this.error = errorMessage(e);
        } finally {
            this.loading = false;
        }
    }
}

function errorMessage(e) {
    const body = e && e.body;
    if (Array.isArray(body) && body.length) {
        return body.map((item) => item.message).join(', ');
    }
    if (body && body.message) {
        return body.message;
    }
    return (e && e.message) || 'Switchboard Console could not be loaded.';
}
