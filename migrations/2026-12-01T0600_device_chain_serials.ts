import { type Kysely } from 'kysely';

/**
 * Revocation by a CA's CRL on every request, not only at enrollment (issue 11).
 * For a device enrolled by certificate chain, the serials of its chain that a
 * registered CA issued (the leaf, and each intermediate whose issuer is a
 * registered CA), per certificate: a CRL loaded later that lists one of them
 * refuses the device's next request with 403 certificate_revoked_by_ca.
 * Grows with the fleet, so it carries device_id.
 * Frozen in time: never import application code here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('device_chain_serials')
    .addColumn('device_id', 'integer', (c) =>
      c.notNull().references('devices.id').onDelete('cascade'),
    )
    // The device certificate whose chain this is (devices can hold several).
    .addColumn('fingerprint', 'text', (c) => c.notNull())
    .addColumn('ca_id', 'integer', (c) =>
      c.notNull().references('certificate_authorities.id').onDelete('cascade'),
    )
    .addColumn('serial_number', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('device_chain_serials_pk', [
      'device_id',
      'fingerprint',
      'ca_id',
      'serial_number',
    ])
    .execute();
  // A CRL load looks up the devices it revokes by (CA, serial).
  await db.schema
    .createIndex('device_chain_serials_ca_serial_idx')
    .on('device_chain_serials')
    .columns(['ca_id', 'serial_number'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('device_chain_serials').execute();
}
