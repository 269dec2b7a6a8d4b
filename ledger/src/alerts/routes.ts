// Alert routes, Orb's paths: /v1/alerts/customer_id/{id}, /external_customer_id/{id},
// /subscription_id/{id}, list, fetch, update, enable, disable, delete.
import type { Pool } from '@drawdown/pg';
import type { Route } from '@drawdown/http';
import { findCustomer } from '../customers/customers';
import { createCustomerAlert, createSubscriptionAlert, deleteAlert, fetchAlert, listAlerts, setEnabled, updateThresholds } from './alerts';

export function alertRoutes(pool: Pool): Route[] {
  return [
    { method: 'POST', path: '/v1/alerts/customer_id/:id', scope: 'admin', handler: async (req) => {
      const c = await findCustomer(pool, { id: req.params.id! });
      return { status: 201, body: await createCustomerAlert(pool, c.id, req.json()) };
    } },
    { method: 'POST', path: '/v1/alerts/external_customer_id/:externalId', scope: 'admin', handler: async (req) => {
      const c = await findCustomer(pool, { externalId: req.params.externalId! });
      return { status: 201, body: await createCustomerAlert(pool, c.id, req.json()) };
    } },
    { method: 'POST', path: '/v1/alerts/subscription_id/:id', scope: 'admin', handler: async (req) => ({ status: 201, body: await createSubscriptionAlert(pool, req.params.id!, req.json()) }) },
    { method: 'GET', path: '/v1/alerts', scope: 'read', handler: async (req) => ({ body: await listAlerts(pool, req.query) }) },
    { method: 'GET', path: '/v1/alerts/:id', scope: 'read', handler: async (req) => ({ body: await fetchAlert(pool, req.params.id!) }) },
    { method: 'PUT', path: '/v1/alerts/:id', scope: 'admin', handler: async (req) => ({ body: await updateThresholds(pool, req.params.id!, req.json()) }) },
    { method: 'DELETE', path: '/v1/alerts/:id', scope: 'admin', handler: async (req) => {
      await deleteAlert(pool, req.params.id!);
      return { status: 204 };
    } },
    { method: 'POST', path: '/v1/alerts/:id/enable', scope: 'admin', handler: async (req) => ({ body: await setEnabled(pool, req.params.id!, true) }) },
    { method: 'POST', path: '/v1/alerts/:id/disable', scope: 'admin', handler: async (req) => ({ body: await setEnabled(pool, req.params.id!, false) }) },
  ];
}
