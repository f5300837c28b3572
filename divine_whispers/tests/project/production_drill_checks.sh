# The production drill's own checks (divine_whispers/tests/project/test_production_drill.py),
# run in the same shell right after docs/operations/production.md's "Starting it" blocks,
# so $APP, $PROXY, $PAYMENT_KEY and the exported environment are the page's.
USERS="from django.contrib.auth.models import User; users = User.objects"
.venv/bin/python manage.py shell -v 0 -c "$USERS; users.create_user('drill-customer')"
CUSTOMER=$(.venv/bin/python manage.py issue_token drill-customer)
ID=$(.venv/bin/python manage.py shell -v 0 -c "$USERS; print(users.get(username='drill-customer').pk)")
JSON=(-H "Content-Type: application/json")
curl -fsS "${PROXY[@]}" "${JSON[@]}" -H "Authorization: Token $PAYMENT_KEY" -o /dev/null \
  -d "{\"user_id\": $ID, \"amount\": 500, \"reference_id\": \"drill-pay-1\"}" "$APP/api/v1/wallet/deposit"
AS_CUSTOMER=("${PROXY[@]}" -H "Authorization: Token $CUSTOMER")
JOB=$(curl -fsS "${AS_CUSTOMER[@]}" "${JSON[@]}" -H "Idempotency-Key: drill-spend-1" \
  -d '{"job_type": "fortune"}' "$APP/api/v1/wallet/spend" | jq .job.id)
for _ in $(seq 60); do # the page's worker runs it
  STATUS=$(curl -fsS "${AS_CUSTOMER[@]}" "$APP/api/v1/jobs/$JOB" | jq -r .status)
  [ "$STATUS" = completed ] && break
  sleep 1
done
echo "drill: job $JOB $STATUS"
curl -fsS "${AS_CUSTOMER[@]}" "$APP/api/v1/wallet/balance"
echo
.venv/bin/python manage.py verify_ledger --json | jq -c '{clean, counts}'
OWNERS="SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'public'"
psql -Atc "SELECT 'drill: app role ' || current_user || ', tables owned by ' || ($OWNERS)" "$DATABASE_URL"
